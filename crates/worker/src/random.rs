//! Randomness from the runtime's Web Crypto (`crypto.getRandomValues`).

use worker::js_sys::{self, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};

pub fn random_u128() -> u128 {
    let mut bytes = [0u8; 16];
    if fill(&mut bytes).is_err() {
        // The Workers runtime always has Web Crypto; if it ever did not, ids must still differ.
        let now = js_sys::Date::now() as u128;
        let noise = (js_sys::Math::random() * 1e15) as u128;
        return (now << 64) ^ noise;
    }
    u128::from_le_bytes(bytes)
}

fn fill(bytes: &mut [u8]) -> Result<(), JsValue> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))?;
    let get_random_values: js_sys::Function =
        Reflect::get(&crypto, &JsValue::from_str("getRandomValues"))?.dyn_into()?;
    let array = Uint8Array::new_with_length(bytes.len() as u32);
    get_random_values.call1(&crypto, &array)?;
    array.copy_to(bytes);
    Ok(())
}
