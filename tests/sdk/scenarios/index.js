// Every scenario by name, written once for both runtimes: run.mjs calls them in Node with the
// SDK's Node build, page.html in Chromium with its browser bundle (the UMD global). Each one
// gets (CB, args, step): the SDK object, the test's JSON arguments, and `step(name, data)`,
// which hands control to the Python test (to look at or change the database) and resolves
// with its reply. It returns every value the test asserts on, as plain JSON.
import chat from './chat.js';
import live from './live.js';
import meetings from './meetings.js';
import sessions from './sessions.js';

export const scenarios = { ...meetings, ...sessions, ...chat, ...live };
