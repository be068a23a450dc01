// The anchor of bench/s3: a tus 1.0 server storing into S3, @tus/server with @tus/s3-store as
// their READMEs show them (partSize 5 MiB, S3's smallest), on loopback.
//
//     node server.mjs PORT ENDPOINT BUCKET        (credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
//
// Uploads at http://127.0.0.1:PORT/files; each upload is an S3 multipart upload of <id>, with
// <id>.info beside it and an <id>.part object for the bytes not yet a part. Path-style
// addressing and checksums only when required: what Swift's s3api (and awscli) need. Stops on
// SIGTERM or SIGINT.
import { Server } from "@tus/server";
import { S3Store } from "@tus/s3-store";

const [port, endpoint, bucket] = process.argv.slice(2);
if (!port || !endpoint || !bucket) {
  console.error("usage: node server.mjs PORT ENDPOINT BUCKET");
  process.exit(2);
}

const tus = new Server({
  path: "/files",
  datastore: new S3Store({
    partSize: 5 * 1024 * 1024,
    s3ClientConfig: {
      bucket,
      endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      credentials: {
        accessKeyId: process.env.AWS_ACCESS_KEY_ID,
        secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
      },
    },
  }),
});
const http = tus.listen({ host: "127.0.0.1", port: Number(port) }, () => {
  console.log(`listening on http://127.0.0.1:${port}/files, objects in ${endpoint}/${bucket}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    http.close();
    process.exit(0);
  });
}
