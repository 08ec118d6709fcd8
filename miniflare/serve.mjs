// `npm start`: serves the registry on the emulator at http://127.0.0.1:5000 (PORT overrides),
// with R2 and KV data persisted under ./data (DATA_DIR overrides).
import { startRegistry } from "./registry.mjs";

const port = Number(process.env.PORT || 5000);
const dataDir = process.env.DATA_DIR || "data";
const { mf, url } = await startRegistry({ port, dataDir });
console.log(`registry listening on ${url} (data in ${dataDir}/)`);
console.log("open mode: no authentication; do not expose this port");
const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
