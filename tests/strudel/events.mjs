// Queries a mini-notation pattern for two cycles with Strudel's own
// packages and sends every event through Strudel's OSC bridge
// (@strudel/osc's server.js, on ws://localhost:8080) exactly as the REPL's
// .osc() does: @strudel/osc's oscTrigger, all events at once, each with its
// target time.  Usage: node --experimental-websocket --import
// ./loader-hook.mjs events.mjs OSC_PORT CPS LEAD_S
// Prints one JSON line per event sent: {s, n, begin} (begin in cycles).
import { s } from '@strudel/core';
import { miniAllStrings } from '@strudel/mini';
import { oscTrigger } from '@strudel/osc';

miniAllStrings(); // strings are mini-notation, as in the REPL
const [port, cps, lead] = process.argv.slice(2).map(Number);
const pattern = s('bd*4, hh*8').n('<0 1 2>').set({ oscport: port });
const haps = pattern.queryArc(0, 2).filter((h) => h.hasOnset());
const now = performance.now() / 1000;
for (const hap of haps) {
  const target = now + lead + hap.whole.begin.valueOf() / cps;
  await oscTrigger(hap, now, cps, target);
  console.log(JSON.stringify({ s: hap.value.s, n: hap.value.n, begin: hap.whole.begin.valueOf() }));
}
// Let the WebSocket deliver everything before leaving.
setTimeout(() => process.exit(0), 300);
