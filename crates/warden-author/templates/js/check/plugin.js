// `{{name}}`: a Warden check plugin in JavaScript. It measures the size of one file and judges
// it against `max_bytes`: `critical` at the maximum, `warning` from `warning_percent` of it,
// `unknown` when the file is missing.

import { stat } from 'warden:plugin/fs@0.1.0';
import { emit } from 'warden:plugin/log@0.1.0';

/** The configuration; the runner has already checked it against plugin.toml's schema. */
function parseConfig(text) {
  // No configuration at all arrives as "" or "null".
  return text.trim() === '' || text.trim() === 'null' ? {} : JSON.parse(text);
}

/**
 * A capability's failure as the plugin's error (thrown from an export, the runner reports it
 * as `plugin failed [code]`), keeping the WIT case as its code.
 */
function capError(e) {
  // Imports that return `result` throw an error whose `payload` is the WIT `cap-error`.
  const err = e?.payload;
  return err ? { code: err.tag, message: String(err.val ?? err.tag) } : { code: 'failed', message: String(e) };
}

function judge(size, maxBytes, warningPercent) {
  if (size >= maxBytes) {
    return 'critical';
  }
  if (size >= (maxBytes * warningPercent) / 100) {
    return 'warning';
  }
  return 'ok';
}

export const check = {
  check(config) {
    const cfg = parseConfig(config);
    const path = cfg.path;
    const maxBytes = cfg.max_bytes;
    const warningPercent = cfg.warning_percent ?? 80;
    let meta;
    try {
      meta = stat(path);
    } catch (e) {
      // A missing file is an answer about the machine, not a failure of the plugin.
      if (e?.payload?.tag === 'not-found') {
        return { status: 'unknown', summary: `${path} does not exist`, metrics: [] };
      }
      throw capError(e);
    }
    if (meta.kind !== 'file') {
      return { status: 'unknown', summary: `${path} is not a regular file`, metrics: [] };
    }
    // u64 arrives as BigInt.
    const size = Number(meta.size);
    emit('info', 'measured file', [
      { key: 'path', value: path },
      { key: 'bytes', value: String(size) },
    ]);
    return {
      status: judge(size, maxBytes, warningPercent),
      summary: `${path}: ${size} of ${maxBytes} bytes`,
      metrics: [{ name: 'size', value: size, unit: 'bytes' }],
    };
  },
};
