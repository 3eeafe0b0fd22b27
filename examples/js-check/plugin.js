// `file-freshness`: a Warden check plugin in JavaScript. It checks that a file (a backup, a
// heartbeat, an export) exists, was modified recently enough, and is not suspiciously small.

import { stat } from 'warden:plugin/fs@0.1.0';
import { emit } from 'warden:plugin/log@0.1.0';

const HOUR_SECS = 3600;

/** A plugin error the runner reports as `plugin` with this code. */
function pluginError(code, message) {
  return { code, message };
}

/** The configuration, validated by the runner against plugin.toml's schema already. */
function parseConfig(text) {
  const raw = JSON.parse(text);
  const cfg = {
    path: raw.path,
    warningHours: raw.warning_age_hours ?? 24,
    criticalHours: raw.critical_age_hours ?? 48,
    minBytes: raw.min_bytes ?? 0,
  };
  if (cfg.warningHours > cfg.criticalHours) {
    throw pluginError('bad-config', 'warning_age_hours must not be above critical_age_hours');
  }
  return cfg;
}

/** `stat`, turning the capability's typed error into a check answer or a plugin error. */
function statOrStatus(path) {
  try {
    return { meta: stat(path) };
  } catch (e) {
    // Imports that return `result` throw an error whose `payload` is the WIT `cap-error`.
    const err = e?.payload;
    if (err?.tag === 'not-found') {
      return { missing: true };
    }
    if (err?.tag === 'denied') {
      throw pluginError('denied', err.val);
    }
    throw pluginError('fs-error', err ? `${err.tag}: ${err.val ?? ''}` : String(e));
  }
}

export const check = {
  check(config) {
    const cfg = parseConfig(config);
    const { meta, missing } = statOrStatus(cfg.path);
    if (missing) {
      return { status: 'critical', summary: `${cfg.path} does not exist`, metrics: [] };
    }
    if (meta.kind !== 'file') {
      return { status: 'critical', summary: `${cfg.path} is not a regular file`, metrics: [] };
    }
    // u64 and s64 arrive as BigInt.
    const size = Number(meta.size);
    if (meta.modifiedSecs === undefined) {
      return { status: 'unknown', summary: `${cfg.path} has no modification time`, metrics: [] };
    }
    const ageSecs = Math.max(0, Date.now() / 1000 - Number(meta.modifiedSecs));
    const ageHours = ageSecs / HOUR_SECS;
    let status = 'ok';
    if (ageHours >= cfg.criticalHours) {
      status = 'critical';
    } else if (ageHours >= cfg.warningHours) {
      status = 'warning';
    }
    if (size < cfg.minBytes) {
      status = 'critical';
    }
    emit('info', 'checked file', [
      { key: 'path', value: cfg.path },
      { key: 'age_secs', value: String(Math.round(ageSecs)) },
      { key: 'bytes', value: String(size) },
    ]);
    return {
      status,
      summary: `${cfg.path}: ${ageHours.toFixed(1)} h old, ${size} bytes`,
      metrics: [
        { name: 'age', value: ageSecs, unit: 'seconds' },
        { name: 'size', value: size, unit: 'bytes' },
      ],
    };
  },
};
