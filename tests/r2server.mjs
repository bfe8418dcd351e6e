// Cloudflare's local R2 (miniflare) serving the S3 API on loopback, for the R2 round trip in
// test_offsite_backups.py. Bucket, credentials, port and data folder come from the environment (never
// argv: the secret would show in ps). Prints one line when it listens; stops on SIGTERM.
import { Miniflare } from "miniflare";

const env = process.env;
const mf = new Miniflare({
  host: "127.0.0.1",
  port: Number(env.R2_PORT),
  modules: true,
  script: "export default { fetch() { return new Response('birdsite tests'); } };",
  r2Buckets: {
    BACKUPS: {
      id: env.R2_BUCKET,
      s3Credentials: { accessKeyId: env.R2_ACCESS_KEY_ID, secretAccessKey: env.R2_SECRET_ACCESS_KEY },
    },
  },
  r2Persist: env.R2_PERSIST,
});
const url = await mf.ready;
console.log(`ready ${url}`);

async function stop() {
  await mf.dispose();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
