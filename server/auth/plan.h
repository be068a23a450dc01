/* plan.h: what each plan (free, premium) allows, as the token's claims say; mediaedge
 * enforces the plan a token carries and never decides one itself. */
#ifndef ME_PLAN_H
#define ME_PLAN_H

#include "server/core/error.h"
#include "server/auth/token.h"

/* The browser rule: uploading from a web browser needs the premium plan. A request counts as
 * coming from a browser when it carries an Origin header (has_origin: browsers send one on
 * every cross-origin request and on every same-origin POST, PATCH or DELETE) or when the
 * token says client browser. Returns 0 when who may upload from there, else
 * ME_EBROWSER_PLAN. Pure: any thread. */
int me_plan_check_client(const me_token_claims_t *who, int has_origin) ME_MUST_CHECK;

#endif
