// The anchor of bench/uploads: a minimal tus 1.0 server, @tus/server with @tus/file-store,
// as its README shows it (defaults everywhere), on loopback.
//
//     node server.mjs PORT DIRECTORY
//
// Uploads at http://127.0.0.1:PORT/files; each upload is one file DIRECTORY/<id> (written in
// place, no fsync) and DIRECTORY/<id>.json. No authentication. Stops on SIGTERM or SIGINT.
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const [port, directory] = process.argv.slice(2);
if (!port || !directory) {
  console.error("usage: node server.mjs PORT DIRECTORY");
  process.exit(2);
}

const tus = new Server({
  path: "/files",
  datastore: new FileStore({ directory }),
});
const http = tus.listen({ host: "127.0.0.1", port: Number(port) }, () => {
  console.log(`listening on http://127.0.0.1:${port}/files, files in ${directory}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    http.close();
    process.exit(0);
  });
}
