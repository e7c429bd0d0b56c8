// Runs scenarios through Miniflare, which runs Cloudflare's own KV binding inside
// workerd: reads [{calls: [...]}, ...] as JSON on stdin, writes one result list per
// scenario as JSON on stdout. Each scenario has a KV namespace of its own.
import { readFileSync } from "node:fs";
import { Miniflare } from "miniflare";

const scenarios = JSON.parse(readFileSync(0, "utf8"));
const bindings = scenarios.map((_, i) => `KV${i}`);
const mf = new Miniflare({
  modules: true,
  scriptPath: new URL("./worker.js", import.meta.url).pathname,
  compatibilityDate: "2026-04-01",
  kvNamespaces: bindings,
});
try {
  const answers = await Promise.all(
    scenarios.map(async (scenario, i) => {
      const body = JSON.stringify({ binding: bindings[i], calls: scenario.calls });
      const response = await mf.dispatchFetch("http://differential/", { method: "POST", body });
      return await response.json();
    }),
  );
  process.stdout.write(JSON.stringify(answers));
} finally {
  await mf.dispose();
}
