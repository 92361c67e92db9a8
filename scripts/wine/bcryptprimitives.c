/* Stand-in for bcryptprimitives.dll under Wine 8 (Debian 12), which lacks it: Rust's std on
 * Windows takes its randomness from ProcessPrng there, so the bridge would not start. Only the
 * Windows cross-check (scripts/windows-cross-check) builds and uses this; Windows has the real
 * DLL. */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x7fffffff ? 0x7fffffff : (ULONG)length;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
