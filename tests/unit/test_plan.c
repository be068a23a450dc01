/* test_plan.c: unit tests of server/auth/plan.c (what each plan allows). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "server/core/error.h"
#include "server/auth/plan.h"

/* Browsers (an Origin header, or a token for client browser) need premium; apps do not. */
static void test_browser_rule(void **state)
{
    static const struct {
        me_plan_t plan;
        me_client_t client;
        int has_origin, want;
    } cases[] = {
        {ME_PLAN_FREE, ME_CLIENT_APP, 0, 0},
        {ME_PLAN_PREMIUM, ME_CLIENT_APP, 0, 0},
        {ME_PLAN_FREE, ME_CLIENT_APP, 1, ME_EBROWSER_PLAN},
        {ME_PLAN_FREE, ME_CLIENT_BROWSER, 0, ME_EBROWSER_PLAN},
        {ME_PLAN_FREE, ME_CLIENT_BROWSER, 1, ME_EBROWSER_PLAN},
        {ME_PLAN_PREMIUM, ME_CLIENT_APP, 1, 0},
        {ME_PLAN_PREMIUM, ME_CLIENT_BROWSER, 0, 0},
        {ME_PLAN_PREMIUM, ME_CLIENT_BROWSER, 1, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        me_token_claims_t who = {.scope = ME_SCOPE_UPLOAD, .plan = cases[i].plan, .client = cases[i].client};
        print_message("case %zu\n", i);
        assert_int_equal(me_plan_check_client(&who, cases[i].has_origin), cases[i].want);
    }
}

/* The refusal is a 403 with a stable code and a message a person can act on. */
static void test_browser_refusal_maps_to_403(void **state)
{
    (void)state;
    assert_int_equal(me_err_status(ME_EBROWSER_PLAN), 403);
    assert_string_equal(me_err_code(ME_EBROWSER_PLAN), "browser_upload_requires_premium");
    assert_non_null(strstr(me_err_message(ME_EBROWSER_PLAN), "premium"));
    assert_non_null(strstr(me_err_message(ME_EBROWSER_PLAN), "mobile app"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_browser_rule),
        cmocka_unit_test(test_browser_refusal_maps_to_403),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
