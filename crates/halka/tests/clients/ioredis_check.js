// What a Node application does first with ioredis, against a halka node: expiry,
// multi().exec() (MULTI/EXEC), counters, a lock with SET NX PX, scanStream.
// Exits non-zero on the first difference.
const assert = require("node:assert/strict");
const Redis = require("ioredis");

async function main() {
  const r = new Redis({ port: Number(process.argv[2]), lazyConnect: true });
  await r.connect();
  assert.equal(await r.set("session", "token", "EX", 100), "OK");
  const ttl = await r.ttl("session");
  assert.ok(ttl > 0 && ttl <= 100, `ttl ${ttl}`);
  const results = await r.multi().set("a", "1").incr("a").get("a").exec();
  assert.deepEqual(results, [[null, "OK"], [null, 2], [null, "2"]]);
  assert.equal(await r.incr("visits"), 1);
  assert.equal(await r.set("lock", "me", "PX", 5000, "NX"), "OK");
  assert.equal(await r.set("lock", "you", "PX", 5000, "NX"), null);
  const keys = [];
  for await (const batch of r.scanStream({ match: "a*" })) keys.push(...batch);
  assert.deepEqual([...new Set(keys)], ["a"]);
  await r.quit();
  console.log("ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
