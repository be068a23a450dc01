/* plan.c: the rules that depend on a token's plan. */
#include "server/auth/plan.h"

int me_plan_check_client(const me_token_claims_t *who, int has_origin)
{
    int from_browser = has_origin || who->client == ME_CLIENT_BROWSER;
    return from_browser && who->plan != ME_PLAN_PREMIUM ? ME_EBROWSER_PLAN : 0;
}
