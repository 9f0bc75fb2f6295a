// Browser builds (esbuild), run by `npm run build` after tsc:
//   dist/browser/client.js  the SDK as one ESM module for bundlers (package exports, "browser" condition);
//                           dependencies stay imports, so an app bundles ts-mls once.
//   dist/web/               the web messenger every DS serves at /app/ (everything bundled), with
//                           sframe-worker.js, the SFrame encoded-transform worker of its calls.
import { build } from "esbuild";
import { cp, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const common = { bundle: true, format: "esm", platform: "browser", target: "es2022", sourcemap: true, logLevel: "warning" };

await build({
  ...common,
  entryPoints: [join(root, "src/client/index.ts")],
  outfile: join(root, "dist/browser/client.js"),
  packages: "external",
});

if (!process.argv.includes("--client-only")) {
  await build({
    ...common,
    entryPoints: { app: join(root, "web/main.ts"), "sframe-worker": join(root, "src/client/sframe-worker.ts") },
    outdir: join(root, "dist/web"),
    minify: true,
    metafile: false,
  });
  await mkdir(join(root, "dist/web"), { recursive: true });
  for (const file of ["index.html", "style.css"]) await cp(join(root, "web", file), join(root, "dist/web", file));
}
