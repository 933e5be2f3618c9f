// Phase 2: application sessions, sign-up and sign-in, users, expiry and abuse limits, as an
// app on the stock SDK meets them.
import { attempt, init } from './common.js';

const MEETING = { name: 'Standup', start_date: 1893456000, end_date: 1893459600 };

// Application credentials alone: wrong ones are refused, right ones give a session that may
// not touch meetings.
async function applicationSession(CB, args) {
  const r = {};
  init(CB, { ...args, authKey: `${args.authKey}-wrong` });
  r.wrongKey = await attempt(() => CB.createSession());
  init(CB, { ...args, appId: args.appId + 1 });
  r.unknownApp = await attempt(() => CB.createSession());
  init(CB, args);
  r.session = await attempt(() => CB.createSession());
  r.current = await attempt(() => CB.getSession());
  r.list = await attempt(() => CB.meeting.get({}));
  r.create = await attempt(() => CB.meeting.create(MEETING));
  r.recordings = await attempt(() => CB.meeting.getRecordings('0123456789abcdef01234567'));
  return r;
}

// Sign-up with the application session, then sign-in and sign-out on that same session.
async function signUpAndLogIn(CB, args) {
  init(CB, args);
  const r = {};
  const user = { login: args.login, password: args.password, email: args.email, full_name: args.fullName };
  r.session = await attempt(() => CB.createSession());
  r.signup = await attempt(() => CB.users.signup(user));
  r.login = await attempt(() => CB.login({ login: args.login, password: args.password }));
  r.current = await attempt(() => CB.getSession());
  r.created = await attempt(() => CB.meeting.create(MEETING));
  r.listed = await attempt(() => CB.meeting.get({}));
  r.logout = await attempt(() => CB.logout());
  r.afterLogout = await attempt(() => CB.meeting.get({}));
  r.currentAfterLogout = await attempt(() => CB.getSession());
  r.loginByEmail = await attempt(() => CB.login({ email: args.email, password: args.password }));
  r.listedAgain = await attempt(() => CB.meeting.get({}));
  return r;
}

// A session by email, users/v2 searches, then the caller's own profile: changed, deleted.
async function users(CB, args) {
  init(CB, args);
  const r = {};
  r.session = await attempt(() => CB.createSession({ email: args.email, password: args.password }));
  r.current = await attempt(() => CB.getSession());
  r.byIds = await attempt(() => CB.users.getV2({ id: { in: args.ids } }));
  r.byLogin = await attempt(() => CB.users.getV2({ login: args.otherLogin }));
  r.paged = await attempt(() => CB.users.getV2({ id: { in: args.ids }, limit: 1, offset: 1 }));
  r.updated = await attempt(() => CB.users.update({ full_name: args.newFullName }));
  r.deleted = await attempt(() => CB.users.delete());
  r.afterDelete = await attempt(() => CB.meeting.get({}));
  return r;
}

// The session expires mid-way (the test expires it in the database at the step); the SDK's
// sessionExpired callback signs in again and retries the refused call with the new session.
async function expiredSession(CB, args, step) {
  const r = { expiredCallbacks: 0 };
  const credentials = { login: args.login, password: args.password };
  init(CB, args, {
    sessionExpired: (handleResponse, retry) => {
      r.expiredCallbacks += 1;
      CB.createSession(credentials).then(
        (session) => {
          r.newToken = session.token;
          retry(session);
        },
        () => handleResponse()
      );
    },
  });
  r.session = await attempt(() => CB.createSession(credentials));
  r.before = await attempt(() => CB.meeting.get({}));
  await step('expire', { token: r.session.value && r.session.value.token });
  r.created = await attempt(() => CB.meeting.create(MEETING));
  r.listed = await attempt(() => CB.meeting.get({}));
  return r;
}

// Sign-ins from one address, one after another: `perLogin` wrong passwords lock that login
// (even the right one is then refused), and past `perAddress` attempts every login is
// refused. Then a plain fetch of the same request, since the SDK keeps no response headers:
// can the app read Retry-After?
async function signInLimits(CB, args) {
  init(CB, args);
  const r = { wrong: [], others: [] };
  const signIn = (login, password) => attempt(() => CB.createSession({ login, password }));
  for (let i = 0; i < args.perLogin; i += 1) r.wrong.push((await signIn(args.login, 'wrong password')).code);
  r.locked = await signIn(args.login, args.password);
  for (let i = args.perLogin + 1; i < args.perAddress; i += 1) {
    r.others.push((await signIn(`nobody${i}`, 'wrong password')).code);
  }
  r.overAddress = await signIn('somebody-else', 'wrong password');
  r.plainFetch = await attempt(async () => {
    const body = { application_id: args.appId, auth_key: args.authKey, user: { login: 'x', password: 'y' } };
    const response = await fetch(`${args.base}/session.json`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, retryAfter: response.headers.get('Retry-After'), body: await response.json() };
  });
  return r;
}

export default { applicationSession, signUpAndLogIn, users, expiredSession, signInLimits };
