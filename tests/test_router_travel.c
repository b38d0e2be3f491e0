/* test_router_travel.c -- the router serves travel mode's browser half: /travel/ (the page
 * that registers the worker), /travel/sw.js (JavaScript, never cached stale by the browser),
 * /travel redirected to /travel/ (the worker's scope), GET only, 404 for anything else, and
 * the texts say what the browser test relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "router/travel.h"
#include "test_router_util.h"

static const char yaml[] =
    "model_list:\n"
    "  - model_name: app/chat\n"
    "    litellm_params: {model: openai/gpt-4o, api_base: os.environ/P_BASE,\n"
    "                     api_key: os.environ/P_KEY}\n"
    "general_settings: {master_key: sk-master-travel}\n";

static void routes(void **state)
{
    struct rw w;
    struct rw_reply r;
    struct fake_spec ps, ss;
    char h[256];
    (void)state;
    rw_spec(&ps, "primary", FAKE_OPENAI);
    rw_spec(&ss, "secondary", FAKE_OPENAI);
    assert_int_equal(rw_start(&w, yaml, &ps, &ss), 0);

    /* no key needed for the static files (the page sends the key it is given) */
    rw_request(&w, "/travel/sw.js", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(rw_hdr(&r, "Content-Type", h, sizeof h), "text/javascript"));
    assert_string_equal(rw_hdr(&r, "Cache-Control", h, sizeof h), "no-cache");
    assert_non_null(strstr(r.body, "addEventListener('fetch'"));
    rw_reply_free(&r);

    rw_request(&w, "/travel/", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(rw_hdr(&r, "Content-Type", h, sizeof h), "text/html"));
    assert_non_null(strstr(r.body, "register('/travel/sw.js', { scope: '/travel/' })"));
    rw_reply_free(&r);

    rw_request(&w, "/travel/index.html", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    rw_reply_free(&r);

    rw_request(&w, "/travel", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 301);
    assert_string_equal(rw_hdr(&r, "Location", h, sizeof h), "/travel/");
    rw_reply_free(&r);

    rw_request(&w, "/travel/other.js", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"code\":\"not_found\""));
    rw_reply_free(&r);

    rw_request(&w, "/travel/sw.js", "{}", NULL, 5000, &r);
    assert_int_equal(r.status, 405);
    rw_reply_free(&r);

    /* the chat endpoint still wants the key */
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
               NULL, 5000, &r);
    assert_int_equal(r.status, 401);
    rw_reply_free(&r);
    rw_stop(&w);
}

static void texts(void **state)
{
    size_t n = 0, m = 0;
    const char *js = travel_worker_js(&n), *html = travel_page_html(&m);
    (void)state;
    assert_int_equal(strlen(js), n);
    assert_int_equal(strlen(html), m);
    /* network first, then the saved answer, marked; a JSON error in OpenAI's shape */
    assert_non_null(strstr(js, "res = await fetch(req)"));
    assert_true(strstr(js, "res = await fetch(req)") < strstr(js, "caches.match(key)"));
    assert_non_null(strstr(js, "h.set('x-slodrill-travel', 'browser-cache')"));
    assert_non_null(strstr(js, "code: 'no_saved_answer'"));
    assert_non_null(strstr(html, "window.slodrillAsk = ask"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(texts),
        cmocka_unit_test(routes),
    };
    rw_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
