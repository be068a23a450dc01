/* montage_cli.h: `mediaedge montage-film SPEC.json OUT.mp4 [--sandbox]`: a montage's film
 * made from local files (renditions, JPEGs) exactly as the server makes it, for tests and
 * benchmarks. Prints the result as JSON. */
#ifndef ME_MONTAGE_CLI_H
#define ME_MONTAGE_CLI_H

#include "server/media/photo/photo.h"

/* argv[1] the spec, argv[2] the film, argv[3] optionally "--sandbox" (a confined
 * montage-decoder child, as the server runs it); pc: the poster's photo settings. The
 * process's exit status: 0, 1 (the film failed), 2 (usage). */
int me_montage_cli(int argc, char **argv, const me_photo_config_t *pc);

#endif
