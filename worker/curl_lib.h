/*
 * libcurl, loaded when the worker's first LLM call needs it (dlopen of its soname,
 * libcurl.so.4) rather than linked: a worker that never calls a model (a dry run) starts
 * without it and the thirty-odd libraries it pulls in, whose relocation was nearly all of
 * a worker's start-up. The functions the LLM client uses, found once.
 */
#ifndef AUTOPACK_CURL_LIB_H
#define AUTOPACK_CURL_LIB_H

#include <curl/curl.h>
#include <stddef.h>
#include <time.h>

#define CURL_LIB_SONAME "libcurl.so.4"

struct curl_lib {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *easy, CURLoption option, ...);
	CURLcode (*easy_getinfo)(CURL *easy, CURLINFO info, ...);
	const char *(*easy_strerror)(CURLcode code);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *multi, CURLMoption option, ...);
	CURLMcode (*multi_add_handle)(CURLM *multi, CURL *easy);
	CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *easy);
	CURLMcode (*multi_timeout)(CURLM *multi, long *ms);
	CURLMcode (*multi_socket_action)(CURLM *multi, curl_socket_t s, int mask, int *running);
	CURLMsg *(*multi_info_read)(CURLM *multi, int *left);
	struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
	void (*slist_free_all)(struct curl_slist *list);
	time_t (*getdate)(const char *s, const time_t *unused);
	CURLU *(*url)(void);
	CURLUcode (*url_set)(CURLU *url, CURLUPart what, const char *part, unsigned int flags);
	void (*url_cleanup)(CURLU *url);
	curl_version_info_data *(*version_info)(CURLversion age);
};

/* libcurl's functions, loaded and curl_global_init run at the first call; NULL when the
 * library cannot be loaded or lacks one of them, with why in err (n bytes; the same text
 * at every later call). */
const struct curl_lib *curl_lib(char *err, size_t n);

#endif
