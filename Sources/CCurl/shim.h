#ifndef WARREN_CCURL_SHIM_H
#define WARREN_CCURL_SHIM_H

// curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt are variadic C functions, which
// Swift cannot call. Each wrapper below fixes one argument type so that the Swift side gets a
// typed, non-variadic function; the option constants themselves import fine from curl.h.

#include <curl/curl.h>
#include <sys/types.h>

// MARK: - global

/// CURL_GLOBAL_ALL is a macro expression Swift does not import.
static inline CURLcode warren_curl_global_init_all(void) {
    return curl_global_init(CURL_GLOBAL_ALL);
}

// MARK: - curl_easy_setopt

static inline CURLcode warren_curl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode warren_curl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/// Strings are copied by libcurl (except CURLOPT_POSTFIELDS, which we never use: COPYPOSTFIELDS
/// copies), so the Swift caller may pass a temporary C string.
static inline CURLcode warren_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode warren_curl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode warren_curl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

/// CURLOPT_WRITEFUNCTION / CURLOPT_HEADERFUNCTION / CURLOPT_READFUNCTION share this shape.
static inline CURLcode warren_curl_easy_setopt_write_function(CURL *handle, CURLoption option, curl_write_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

/// Restricts a handle to http and https. CURLOPT_PROTOCOLS_STR replaced the bitmask option in
/// 7.85 and the bitmask one is deprecated there; pick whichever the installed curl has.
static inline CURLcode warren_curl_easy_restrict_protocols_to_http(CURL *handle) {
#if LIBCURL_VERSION_NUM >= 0x075500
    CURLcode rc = curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    CURLcode rc = curl_easy_setopt(handle, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}

/// CURLAUTH_BASIC is an unsigned-long macro with a cast Swift does not import.
static inline CURLcode warren_curl_easy_use_basic_auth(CURL *handle) {
    return curl_easy_setopt(handle, CURLOPT_HTTPAUTH, (unsigned long)CURLAUTH_BASIC);
}

// MARK: - curl_easy_getinfo

static inline CURLcode warren_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode warren_curl_easy_getinfo_string(CURL *handle, CURLINFO info, const char **value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode warren_curl_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

// MARK: - curl_multi_setopt

static inline CURLMcode warren_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}

// MARK: - thread name

#ifdef __linux__
#include <sys/prctl.h>
#endif

/// Names the calling thread (shows in top -H, gdb, perf). pthread_setname_np needs _GNU_SOURCE,
/// which Swift's Glibc import does not define; prctl is variadic. Linux only, a no-op elsewhere.
static inline void warren_set_current_thread_name(const char *name) {
#ifdef __linux__
    prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
#else
    (void)name;
#endif
}

// MARK: - CURLMsg

/// CURLMsg.data is an anonymous union; reading it through a function keeps Swift away from the
/// union's import rules.
static inline CURLcode warren_curl_msg_result(const CURLMsg *message) {
    return message->data.result;
}

#endif
