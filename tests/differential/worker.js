// A Worker that runs a scenario's calls against one of its KV bindings and answers
// what each call returned or threw, in the tagged JSON that tests/differential reads
// (see codec.py): bytes, NaN, undefined, Maps, cursors and "now + s" have tags;
// strings and plain JSON values are themselves. It answers {now_s, results}: the
// Unix second the scenario started, and per call {ok: value} or {error: {type, message}}.

function decode(value, results) {
  if (Array.isArray(value)) return value.map((item) => decode(item, results));
  if (value === null || typeof value !== "object") return value;
  switch (value.$) {
    case "bytes": return hexToBytes(value.hex);
    case "number": return Number(value.repr);
    case "undefined": return undefined;
    case "cursor": return results[value.call]?.ok?.cursor;
    case "now": return Math.floor(Date.now() / 1000) + value.plus;
    case undefined: return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, decode(v, results)]));
    default: throw new Error(`unknown tag ${value.$}`);
  }
}

function encode(value) {
  if (value === undefined) return { $: "undefined" };
  if (typeof value === "number" && !Number.isFinite(value)) return { $: "number", repr: String(value) };
  if (value instanceof ArrayBuffer) return { $: "bytes", hex: bytesToHex(new Uint8Array(value)) };
  if (value instanceof Map) return { $: "map", entries: [...value].map(([k, v]) => [k, encode(v)]) };
  if (Array.isArray(value)) return value.map(encode);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encode(v)]));
}

function hexToBytes(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function bytesToHex(bytes) {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function settle(result) {
  if (result instanceof ReadableStream) return await new Response(result).arrayBuffer();
  if (result && result.value instanceof ReadableStream) {
    return { ...result, value: await new Response(result.value).arrayBuffer() };
  }
  return result;
}

// Inside a Worker, Date.now() stands still until some I/O happens, and the KV service
// checks an expiration on its own clock: a call that sends "now + s" first lets a timer
// bring the Worker's clock up to date, late in a second waits for the next, then reads it.
async function youngSecond() {
  await new Promise((resolve) => setTimeout(resolve, 0));
  const intoSecondMs = Date.now() % 1000;
  if (intoSecondMs > 700) await new Promise((resolve) => setTimeout(resolve, 1010 - intoSecondMs));
}

async function run(kv, call, results) {
  if (JSON.stringify(call.args).includes('"$":"now"')) await youngSecond();
  const args = decode(call.args, results);
  if (call.op === "pause") {
    await new Promise((resolve) => setTimeout(resolve, args[0] * 1000));
    return undefined;
  }
  return await settle(await kv[call.op](...args));
}

export default {
  async fetch(request, env) {
    const scenario = await request.json();
    const kv = env[scenario.binding];
    const nowS = Math.floor(Date.now() / 1000);
    const results = [];
    for (const call of scenario.calls) {
      try {
        results.push({ ok: encode(await run(kv, call, results)) });
      } catch (error) {
        results.push({ error: { type: error.constructor.name, message: error.message } });
      }
    }
    return Response.json({ now_s: nowS, results });
  },
};
