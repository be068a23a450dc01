/* clock.c: the monotonic and wall clocks in milliseconds. */
#include <time.h>
#include "server/core/clock.h"

static int64_t ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t me_clock_mono_ms(void)
{
    return ms(CLOCK_MONOTONIC);
}

int64_t me_clock_wall_ms(void)
{
    return ms(CLOCK_REALTIME);
}
