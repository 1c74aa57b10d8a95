#!/usr/bin/env node
// looperd e2e test client built on the `osc` package (osc.js): an OSC
// implementation independent of liblo and of the test harness.
//
//   node looperd_test.js PORT ID PATH VELOCITY
//
// Sends /ping, /load, then a bundle timetagged 0.2 s ahead holding /play
// (id as int32 "i", velocity as float32 "f"), a /load of a missing file and,
// 1 s later, /stop.  Prints every reply as one JSON line
// {"address": ..., "args": [...]} and exits 0 after /done /stop (1 on a
// timeout or an error).
"use strict";
const osc = require("osc");

const [port, id, path, velocity] = process.argv.slice(2);
if (velocity === undefined) {
    console.error("usage: looperd_test.js PORT ID PATH VELOCITY");
    process.exit(2);
}
const slot = { type: "i", value: parseInt(id, 10) };

// localPort 0: one socket on an ephemeral port that sends and also
// receives the replies, which looperd sends back to the sender's port.
const udp = new osc.UDPPort({
    localAddress: "127.0.0.1",
    localPort: 0,
    remoteAddress: "127.0.0.1",
    remotePort: parseInt(port, 10),
    metadata: true,
});

const watchdog = setTimeout(() => {
    console.error("timeout: no /done /stop");
    process.exit(1);
}, 20000);

udp.on("error", (err) => {
    console.error("osc error:", err.message);
    process.exit(1);
});

udp.on("message", (msg) => {
    const args = msg.args.map((a) => a.value);
    console.log(JSON.stringify({ address: msg.address, args }));
    if (msg.address === "/pong") {
        udp.send({ address: "/load", args: [slot, { type: "s", value: path }] });
    } else if (msg.address === "/done" && args[0] === "/load") {
        udp.send({
            timeTag: osc.timeTag(0.2),
            packets: [{
                address: "/play",
                args: [slot, { type: "f", value: parseFloat(velocity) }],
            }],
        });
        udp.send({
            address: "/load",
            args: [slot, { type: "s", value: "/nonexistent/looperd-node-test.wav" }],
        });
        setTimeout(() => udp.send({ address: "/stop", args: [] }), 1000);
    } else if (msg.address === "/done" && args[0] === "/stop") {
        clearTimeout(watchdog);
        udp.close();
        process.exit(0);
    }
});

udp.on("ready", () => udp.send({ address: "/ping", args: [] }));
udp.open();
