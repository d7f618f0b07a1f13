/* calibrate --rollback and --list: the stored coefficient sets. */
#include "ctl/cmd-calibrate.h"
#include "common/jsonload.h"
#include "common/store/store_coef.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>

/* Make the previous set active again. */
int cmd_calib_rollback(struct cmd_ctx *ctx)
{
	struct store_err err;
	struct store st;
	int64_t from = 0, now = 0;
	int lock_fd, rc, ret = cmd_open_write(ctx, &st, &lock_fd);

	if (ret != 0)
		return ret;
	rc = store_coef_rollback(&st, &from, &now, &err);
	if (rc != 0) {
		ret = cmd_fail(ctx, rc, "%s", err.text);
	} else {
		fprintf(cmd_text_out(ctx),
		    "rolled back: coefficient set %lld is no longer "
		    "active; version %lld%s is active now (the supervisor picks it up at its next "
		    "start)\n",
		    (long long)from, (long long)now,
		    now == STORE_COEF_BUILTIN ? " (the built-in defaults)" : "");
		if (ctx->json)
			cmd_json_print(
			    json_pack("{s:b, s:I, s:I, s:b, s:o}", "ok", 1, "rolled_back_version",
			        (json_int_t)from, "active_version", (json_int_t)now, "builtin",
			        now == STORE_COEF_BUILTIN, "database", cmd_identity_json(&st)));
	}
	cmd_close_write(&st, lock_fd);
	return ret;
}

/* A category or complexity of a provenance's overhead row as a terminal may show it
 * (cmd_shown); "?" when it is no string (another program's row). */
static const char *cmd_calib_row_name(const json_t *v)
{
	return json_is_string(v) ? cmd_shown(json_string_value(v)) : "?";
}

/* Summarise a set: its fitted model ("fitted: F 2.979, 51 samples"), or the overhead
 * changes of its provenance ("implementation/low 634->370, ..."). */
static void cmd_calib_print_changes(FILE *out, json_t *prov, json_t *model)
{
	json_t *changes = json_object_get(prov, "changes"), *ch;
	size_t i, k = 0;

	if (model != NULL) {
		fprintf(out, "fitted: F %.3f, %lld samples",
		    json_number_value(json_object_get(model, "factor")),
		    (long long)json_integer_value(json_object_get(model, "samples")));
		return;
	}
	json_array_foreach(changes, i, ch)
	{
		json_t *row = json_object_get(ch, "overhead_row");

		if (!json_is_array(row))
			continue;
		fprintf(out, "%s%s/%s %lld->%lld", k++ ? ", " : "",
		    cmd_calib_row_name(json_array_get(row, 0)),
		    cmd_calib_row_name(json_array_get(row, 1)),
		    (long long)json_integer_value(json_object_get(ch, "old_overhead")),
		    (long long)json_integer_value(json_object_get(ch, "new_overhead")));
	}
	if (k == 0)
		fprintf(out, "-");
}

/* List every stored set, newest first, then the built-in defaults. */
int cmd_calib_list(struct cmd_ctx *ctx)
{
	struct store_coef_set *sets;
	struct store_err err;
	struct store st;
	size_t n;
	int64_t active = STORE_COEF_BUILTIN;
	FILE *out = cmd_text_out(ctx);
	json_t *arr;
	int rc, ret = cmd_open_read(ctx, &st, true);

	if (ret != 0)
		return ret;
	rc = store_coef_list(&st, &sets, &n, &err);
	if (rc != 0) {
		ret = cmd_fail(ctx, rc, "%s", err.text);
		store_close(&st);
		return ret;
	}
	arr = json_array();
	fprintf(out, "\n  %-7s %-6s %-24s %-6s %-7s %s\n", "version", "active", "created", "parent",
	    "samples", "changes");
	for (size_t i = 0; i < n; i++) {
		json_t *prov = json_loads_bounded(sets[i].provenance_json, 0, NULL);
		json_t *oh = json_loads_bounded(sets[i].overhead_json, 0, NULL);
		json_t *model = sets[i].model_json != NULL ?
		    json_loads_bounded(sets[i].model_json, 0, NULL) :
		    NULL;

		if (sets[i].active)
			active = sets[i].version;
		fprintf(out, "  %-7lld %-6s %-24s %-6lld %-7lld ", (long long)sets[i].version,
		    sets[i].active ? "yes" : "", cmd_shown(sets[i].created_at),
		    (long long)sets[i].parent_version,
		    (long long)json_integer_value(json_object_get(prov, "samples_used")));
		cmd_calib_print_changes(out, prov, model);
		fputc('\n', out);
		json_array_append_new(arr,
		    json_pack("{s:I, s:b, s:o, s:I, s:o, s:o, s:o}", "version",
		        (json_int_t)sets[i].version, "active", sets[i].active, "created_at",
		        cmd_json_text(sets[i].created_at), "parent_version",
		        (json_int_t)sets[i].parent_version, "provenance",
		        prov != NULL ? prov : json_null(), "overhead",
		        oh != NULL ? oh : json_null(), "model",
		        model != NULL ? model : json_null()));
	}
	fprintf(out, "  %-7d %-6s %-24s %-6s %-7s %s\n", STORE_COEF_BUILTIN,
	    active == STORE_COEF_BUILTIN ? "yes" : "", "(built-in defaults)", "-", "-", "-");
	if (ctx->json)
		cmd_json_print(json_pack("{s:b, s:I, s:o, s:o}", "ok", 1, "active_version",
		    (json_int_t)active, "sets", arr, "database", cmd_identity_json(&st)));
	else
		json_decref(arr);
	store_coef_list_free(sets, n);
	store_close(&st);
	return CMD_EXIT_OK;
}
