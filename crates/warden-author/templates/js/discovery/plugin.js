// `{{name}}`: a Warden discovery plugin in JavaScript. It reads os-release(5) and reports
// one fact group `os-release` with the distribution's `id`, `version-id` and `pretty-name`, plus
// any keys listed in `extra_keys`.

import { read, stat } from 'warden:plugin/fs@0.1.0';
import { emit } from 'warden:plugin/log@0.1.0';

// The files read; plugin.toml requests exactly these paths.
const OS_RELEASE = '/etc/os-release';
// Where /etc/os-release usually links to, and the fallback os-release(5) names. A grant of one
// file does not extend to a symlink's target, so the target is read directly.
const OS_RELEASE_FALLBACK = '/usr/lib/os-release';

/** The configuration; the runner has already checked it against plugin.toml's schema. */
function parseConfig(text) {
  // No configuration at all arrives as "" or "null".
  return text.trim() === '' || text.trim() === 'null' ? {} : JSON.parse(text);
}

/** A capability's failure as the plugin's error, keeping the WIT case as its code. */
function capError(e) {
  // Imports that return `result` throw an error whose `payload` is the WIT `cap-error`.
  const err = e?.payload;
  return err ? { code: err.tag, message: String(err.val ?? err.tag) } : { code: 'failed', message: String(e) };
}

/** Strip shell-style quotes and undo the backslash escapes os-release(5) allows in them. */
function unquote(value) {
  const q = value[0];
  if (value.length < 2 || (q !== '"' && q !== "'") || value[value.length - 1] !== q) {
    return value;
  }
  let out = '';
  const inner = value.slice(1, -1);
  for (let i = 0; i < inner.length; i++) {
    if (inner[i] === '\\') {
      i++;
      out += inner[i] ?? '';
    } else {
      out += inner[i];
    }
  }
  return out;
}

/** `KEY=value` lines; `#` lines are comments. The last assignment wins, as in a shell. */
function parse(text) {
  const pairs = new Map();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const eq = line.indexOf('=');
    if (line === '' || line.startsWith('#') || eq < 0) {
      continue;
    }
    pairs.set(line.slice(0, eq).trim(), unquote(line.slice(eq + 1).trim()));
  }
  return pairs;
}

function text(key, value) {
  return { key, value: { tag: 'text', val: value } };
}

export const discovery = {
  discover(config) {
    const cfg = parseConfig(config);
    let path = OS_RELEASE_FALLBACK;
    try {
      if (stat(OS_RELEASE).kind === 'file') {
        path = OS_RELEASE;
      }
    } catch (e) {
      if (e?.payload?.tag !== 'not-found') {
        throw capError(e);
      }
    }
    let content;
    try {
      content = new TextDecoder('utf-8', { fatal: true }).decode(read(path));
    } catch (e) {
      if (e?.payload?.tag === 'not-found') {
        throw {
          code: 'not-applicable',
          message: `neither ${OS_RELEASE} nor ${OS_RELEASE_FALLBACK} exists, so the OS cannot be identified`,
        };
      }
      if (e?.payload === undefined) {
        throw { code: 'invalid', message: `${path} is not UTF-8` };
      }
      throw capError(e);
    }
    const pairs = parse(content);
    // Defaults from os-release(5) for keys a distribution may leave out.
    const id = pairs.get('ID') ?? 'linux';
    emit('info', 'identified the OS', [{ key: 'id', value: id }]);
    const facts = [text('id', id), text('pretty-name', pairs.get('PRETTY_NAME') ?? 'Linux')];
    if (pairs.has('VERSION_ID')) {
      facts.push(text('version-id', pairs.get('VERSION_ID')));
    }
    for (const key of cfg.extra_keys ?? []) {
      if (pairs.has(key)) {
        // VERSION_CODENAME becomes version-codename.
        facts.push(text(key.toLowerCase().replaceAll('_', '-'), pairs.get(key)));
      }
    }
    return [{ kind: 'os-release', facts }];
  },
};
