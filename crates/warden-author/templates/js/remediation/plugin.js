// `{{name}}`: a Warden remediation plugin in JavaScript. `plan` proposes restarting the
// configured service when it is not running; `apply` checks again, restarts it, and reports
// success only when it runs afterwards.

import { emit } from 'warden:plugin/log@0.1.0';
import { status } from 'warden:plugin/service@0.1.0';
import { restart } from 'warden:plugin/service-control@0.1.0';

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

/** A capability's failure as text for an outcome's detail. */
function describe(e) {
  const err = capError(e);
  return `${err.code}: ${err.message}`;
}

/** The id of the one action this plugin plans, so `apply` can recognise it. */
function actionId(name) {
  return `restart-${name}`;
}

function outcome(action, status, detail) {
  return { id: action.id, status, detail };
}

function applyOne(name, action) {
  // The approved list may have been edited: act only on the action this plugin would plan.
  if (action.id !== actionId(name) || action.kind !== 'service-restart' || action.target !== name) {
    return outcome(action, 'skipped', `not a restart of the configured service ${name}`);
  }
  // The plan may be stale: the service may have come back since.
  try {
    if (status(name) === 'running') {
      return outcome(action, 'skipped', 'already running');
    }
  } catch (e) {
    return outcome(action, 'failed', `status failed: ${describe(e)}`);
  }
  try {
    restart(name);
  } catch (e) {
    return outcome(action, 'failed', `restart failed: ${describe(e)}`);
  }
  emit('info', 'restarted', [{ key: 'service', value: name }]);
  let state;
  try {
    state = status(name);
  } catch (e) {
    return outcome(action, 'failed', `restarted, but status failed: ${describe(e)}`);
  }
  if (state !== 'running') {
    return outcome(action, 'failed', `restarted, but it is ${state}`);
  }
  return outcome(action, 'applied', 'restarted; now running');
}

export const remediation = {
  plan(config) {
    const name = parseConfig(config).service;
    let state;
    try {
      state = status(name);
    } catch (e) {
      throw capError(e);
    }
    if (state === 'running') {
      return [];
    }
    return [
      {
        id: actionId(name),
        kind: 'service-restart',
        target: name,
        description: `restart ${name} (it is ${state})`,
      },
    ];
  },

  apply(config, actions) {
    const name = parseConfig(config).service;
    return actions.map((action) => applyOne(name, action));
  },
};
