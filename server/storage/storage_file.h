/* storage_file.h: the file backend, a local directory (storage.backend: file).
 *
 * It keeps key "a/b/c" at <storage.root>/a/b/c, so an operator can look at it. Its own files
 * live under names starting with '.', which no key can have:
 *     <root>/.tmp/<random>                  files being written (renamed into place when whole)
 *     <root>/.multipart/<upload-id>/key     the key a multipart upload will complete into
 *     <root>/.multipart/<upload-id>/data    the upload's bytes: each part at its offset, right
 *                                           after the part before it; completing truncates it
 *                                           to the parts' total and renames it to the key, so
 *                                           no byte is written twice
 *     <root>/.multipart/<upload-id>/00001.rec   part 1's record, written once its bytes are
 *                                           durable: "<etag> <offset> <size>\n" (the etag
 *                                           32 random hex digits, new at every put)
 * A filesystem cannot hold a file "a" and a file "a/b" at once: putting one while the other
 * exists fails with ME_EIO (the keys README.md lists under "Storage" never do). */
#ifndef ME_STORAGE_FILE_H
#define ME_STORAGE_FILE_H

#include "server/storage/storage_backend.h"

/* The file backend: open takes storage.root (created with its parents when missing, mode
 * 0750) and removes what a crash left in .tmp a day ago or more. Parts may have any size
 * (min_part_size 0). Its upload ids are 32 lowercase hex digits; any other id is ME_EINVAL.
 * Parts must be put in order: part n goes right after part n-1, so putting part n before
 * part n-1 is ME_ECONFLICT (gaps are refused). Putting part n again (the last wins) drops
 * parts n+1 and later, which must then be put again. Completing takes parts 1..k, each as
 * last put; any other list is ME_ECONFLICT. Completing an upload twice: ME_ENOTFOUND the
 * second time. Part puts and completions of one upload exclude each other (a lock on its data
 * file). */
extern const me_storage_ops_t me_storage_file_ops;

#endif
