/* libcurl loaded at the first LLM call (worker/curl_lib.h). */
#include "worker/curl_lib.h"
#include "common/util.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Find symbol `name` in handle h into *fn; false, with why in err, when it is missing. */
static bool curl_lib_sym(void *h, const char *name, void *fn, char *err, size_t n)
{
	void *p = dlsym(h, name);

	if (p == NULL) {
		snprintf(err, n, "%s has no %s", CURL_LIB_SONAME, name);
		return false;
	}
	memcpy(fn, &p, sizeof p);
	return true;
}

const struct curl_lib *curl_lib(char *err, size_t n)
{
	static struct curl_lib lib;
	static bool tried, loaded;
	static char why[256];
	void *h;

	if (!tried) {
		tried = true;
		if ((h = dlopen(CURL_LIB_SONAME, RTLD_NOW | RTLD_LOCAL)) == NULL) {
			const char *e = dlerror();

			snprintf(why, sizeof why, "cannot load %s: %s", CURL_LIB_SONAME,
			    e != NULL ? e : "unknown error");
		} else if (curl_lib_sym(h, "curl_global_init", &lib.global_init, why, sizeof why) &&
		    curl_lib_sym(h, "curl_easy_init", &lib.easy_init, why, sizeof why) &&
		    curl_lib_sym(h, "curl_easy_setopt", &lib.easy_setopt, why, sizeof why) &&
		    curl_lib_sym(h, "curl_easy_getinfo", &lib.easy_getinfo, why, sizeof why) &&
		    curl_lib_sym(h, "curl_easy_strerror", &lib.easy_strerror, why, sizeof why) &&
		    curl_lib_sym(h, "curl_multi_init", &lib.multi_init, why, sizeof why) &&
		    curl_lib_sym(h, "curl_multi_setopt", &lib.multi_setopt, why, sizeof why) &&
		    curl_lib_sym(
		        h, "curl_multi_add_handle", &lib.multi_add_handle, why, sizeof why) &&
		    curl_lib_sym(
		        h, "curl_multi_remove_handle", &lib.multi_remove_handle, why, sizeof why) &&
		    curl_lib_sym(h, "curl_multi_timeout", &lib.multi_timeout, why, sizeof why) &&
		    curl_lib_sym(
		        h, "curl_multi_socket_action", &lib.multi_socket_action, why, sizeof why) &&
		    curl_lib_sym(
		        h, "curl_multi_info_read", &lib.multi_info_read, why, sizeof why) &&
		    curl_lib_sym(h, "curl_slist_append", &lib.slist_append, why, sizeof why) &&
		    curl_lib_sym(h, "curl_slist_free_all", &lib.slist_free_all, why, sizeof why) &&
		    curl_lib_sym(h, "curl_getdate", &lib.getdate, why, sizeof why) &&
		    curl_lib_sym(h, "curl_url", &lib.url, why, sizeof why) &&
		    curl_lib_sym(h, "curl_url_set", &lib.url_set, why, sizeof why) &&
		    curl_lib_sym(h, "curl_url_cleanup", &lib.url_cleanup, why, sizeof why) &&
		    curl_lib_sym(h, "curl_version_info", &lib.version_info, why, sizeof why)) {
			lib.global_init(CURL_GLOBAL_DEFAULT);
			loaded = true;
		}
	}
	if (!loaded) {
		strlcpy_ap(err, why, n);
		return NULL;
	}
	return &lib;
}
