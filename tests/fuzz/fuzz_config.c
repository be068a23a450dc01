/* fuzz_config.c: the configuration loader (server/core/config.c): the bytes before the first
 * NUL are the YAML file, the lines after it MEDIAEDGE_* environment variables. A file that
 * loads is then resolved, checked against the production rules and printed, as `serve`
 * and `config` do. Errors must say where (a non-empty message). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "server/core/config.h"

#define ENV_MAX 32

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    if (path[0] == '\0')
        snprintf(path, sizeof(path), "/tmp/me-fuzz-config-%d.yaml", (int)getpid());
    const uint8_t *nul = memchr(data, '\0', size);
    size_t ylen = nul != NULL ? (size_t)(nul - data) : size;
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        abort();
    if (ylen > 0 && fwrite(data, 1, ylen, f) != ylen)
        abort();
    fclose(f);

    /* the environment: NUL-terminated copies of each line after the NUL */
    char *envbuf = NULL, *envp[ENV_MAX + 1];
    int nenv = 0;
    if (nul != NULL) {
        size_t elen = size - ylen - 1;
        if ((envbuf = malloc(elen + 1)) == NULL)
            return 0;
        memcpy(envbuf, nul + 1, elen);
        envbuf[elen] = '\0';
        for (char *save = NULL, *line = strtok_r(envbuf, "\n", &save); line != NULL && nenv < ENV_MAX;
             line = strtok_r(NULL, "\n", &save))
            envp[nenv++] = line;
    }
    envp[nenv] = NULL;

    me_config_t cfg;
    char err[512] = "";
    if (me_config_load(&cfg, path, envp, err, sizeof(err)) == 0) {
        me_config_resolve(&cfg);
        (void)me_config_check_production(&cfg, err, sizeof(err));
        FILE *out = fopen("/dev/null", "w");
        if (out != NULL) {
            me_config_print(&cfg, out);
            fclose(out);
        }
    } else if (err[0] == '\0') {
        abort(); /* refused without saying why */
    }
    me_config_free(&cfg);
    free(envbuf);
    return 0;
}
