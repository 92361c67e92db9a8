#!/usr/bin/env node
// The `sampling2api` command of the npm package: runs the native binary that npm installed with
// it. Each platform's binary is its own package (`@sampling2api/<os>-<cpu>`, one of this
// package's optionalDependencies, whose `os`/`cpu` fields make npm install only the matching
// one), so this needs no install script, which npm 11 would not run anyway.
//
// When an MCP client launches `npx -y sampling2api stdio`, stdout is the MCP channel: this
// script never writes to it. Its own errors are one line on stderr, exit code 1.
'use strict';

const { spawn } = require('node:child_process');
const path = require('node:path');
const { constants } = require('node:os');
const manifest = require('../package.json');

// What the bridge may read to learn it was started through this package (so `connect` can
// write `npx -y sampling2api …` instead of a path into npm's cache).
const LAUNCHER_ENV = {
  SAMPLING2API_LAUNCHER: 'npm',
  SAMPLING2API_LAUNCHER_PACKAGE: `${manifest.name}@${manifest.version}`,
};

function fail(message) {
  process.stderr.write(`sampling2api: ${message}\n`);
  process.exit(1);
}

// As npm decides for a package's `libc` field: glibc if the runtime reports one, else musl.
function libc() {
  try {
    return process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl';
  } catch {
    return 'unknown libc';
  }
}

function binaryPath() {
  const platform = `${process.platform}-${process.arch}`;
  const name = `@sampling2api/${platform}`;
  const shown = process.platform === 'linux' ? `${process.platform} ${process.arch} (${libc()})` : `${process.platform} ${process.arch}`;
  const supported = Object.keys(manifest.optionalDependencies || {}).map((dep) => dep.replace('@sampling2api/', ''));
  let packageJson;
  try {
    packageJson = require.resolve(`${name}/package.json`);
  } catch {
    if (!supported.includes(platform)) {
      fail(`no prebuilt binary for ${shown}; there are binaries for ${supported.join(', ')}. Build it instead: cargo install --locked sampling2api`);
    }
    fail(`the binary for ${shown} is missing: npm did not install ${name}@${manifest.version}, the optional dependency that holds it (installed with --omit=optional or --no-optional, or from a lockfile made on another platform?). Reinstall sampling2api with its optional dependencies.`);
  }
  return path.join(path.dirname(packageJson), 'bin', process.platform === 'win32' ? 'sampling2api.exe' : 'sampling2api');
}

const binary = binaryPath();
const child = spawn(binary, process.argv.slice(2), {
  stdio: 'inherit',
  windowsHide: true,
  env: { ...process.env, ...LAUNCHER_ENV },
});

// Forward the signals a terminal, a process manager or an MCP client sends, so stopping this
// process stops the bridge. On Windows, Ctrl+C and Ctrl+Break reach every process on the
// console by themselves (and `kill` there would terminate the bridge without a graceful
// shutdown): only keep Node from exiting before the bridge does.
const forwarded = process.platform === 'win32' ? ['SIGINT', 'SIGBREAK'] : ['SIGINT', 'SIGTERM', 'SIGHUP'];
const handlers = {};
for (const signal of forwarded) {
  handlers[signal] = () => {
    if (process.platform !== 'win32' && child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
    }
  };
  process.on(signal, handlers[signal]);
}

child.on('error', (error) => fail(`cannot run ${binary}: ${error.message}`));

// Exit as the bridge did: its exit code, or death by the same signal (a shell then sees
// 128 + the signal's number, and a supervisor sees the signal).
child.on('exit', (code, signal) => {
  if (signal) {
    for (const name of forwarded) {
      process.removeListener(name, handlers[name]);
    }
    process.kill(process.pid, signal);
    // Only reached where the signal does not end Node (Windows): the shell's convention.
    setTimeout(() => process.exit(128 + (constants.signals[signal] || 0)), 100);
    return;
  }
  process.exit(code === null ? 1 : code);
});
