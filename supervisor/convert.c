/* The edge between the store's types and the wire's: the supervisor owns both, so it
 * converts a phase spec and the coefficient set into a job, and an event from a worker
 * into the row the store records. */
#include "supervisor/sup.h"
#include "common/util.h"

#include <string.h>

/* View a list of store strings as a wire list (borrowed). */
static void convert_strs(const struct store_strs *from, struct proto_strlist *to)
{
	to->items = from->v;
	to->n = from->n;
}

/* Point a job's phase fields at a phase spec's strings (borrowed). */
void convert_spec_to_job(const struct drain_spec *spec, struct proto_job *job)
{
	struct proto_phase *p = &job->phase;

	p->name = spec->name;
	p->description = spec->description;
	p->task_category = spec->task_category;
	p->complexity = spec->complexity;
	convert_strs(&spec->paths, &p->paths);
	convert_strs(&spec->read_only_context, &p->read_only_context);
	convert_strs(&spec->deliverables, &p->deliverables);
	p->check_command = spec->check_command;
	p->max_builder_attempts = spec->max_builder_attempts;
	job->workspace = spec->workspace;
}

/* Copy the coefficient rows into a job. */
void convert_coefs_to_job(const struct store_coef_row *rows, size_t n, struct proto_job *job)
{
	job->coefs = xcalloc(n + 1, sizeof *job->coefs);
	for (size_t i = 0; i < n; i++) {
		job->coefs[i].category = xstrdup(rows[i].category);
		job->coefs[i].complexity = xstrdup(rows[i].complexity);
		job->coefs[i].overhead = rows[i].overhead;
	}
	job->ncoefs = n;
}

/* View a wire event as a store row. */
void convert_event_to_row(const struct proto_event *ev, struct drain_event *row)
{
	memset(row, 0, sizeof *row);
	row->attempt_id = ev->attempt_id;
	row->seq = ev->seq;
	row->kind = (enum event_kind)ev->kind;
	switch (ev->kind) {
	case PROTO_EV_LLM_USAGE: {
		const struct proto_usage *u = &ev->body.usage;

		row->u.usage = (struct drain_usage){
			.provider = u->provider,
			.model = u->model,
			.role = u->role,
			.prompt_tokens = u->prompt_tokens,
			.completion_tokens = u->completion_tokens,
			.total_tokens = u->total_tokens,
			.latency_ms = u->latency_ms,
			.http_status = u->http_status,
			.error_class = u->error_class,
			.try_number = u->try_number,
		};
		break;
	}
	case PROTO_EV_TOKEN_ESTIMATION: {
		const struct proto_estimation *e = &ev->body.est;

		row->u.est = (struct store_estimation){
			.category = e->category,
			.complexity = e->complexity,
			.deliverable_count = e->deliverable_count,
			.deliverables_json = e->deliverables_json,
			.predicted_output_tokens = e->predicted_output_tokens,
			.actual_output_tokens = e->actual_output_tokens,
			.selected_budget = e->selected_budget,
			.actual_max_tokens = e->actual_max_tokens,
			.success = e->success,
			.truncated = e->truncated,
			.stop_reason = e->stop_reason,
			.model = e->model,
			.estimator_version = e->estimator_version,
			.doc_features = e->doc_features,
			.context_quality = e->context_quality,
			.sot_file_name = e->sot_file_name,
			.sot_entry_count_hint = e->sot_entry_count_hint,
			.input_tokens = e->input_tokens,
			.deliverables_detail_json = e->deliverables_detail_json,
		};
		break;
	}
	case PROTO_EV_LOG:
		row->u.log.level = ev->body.log.level;
		row->u.log.message = ev->body.log.message;
		break;
	case PROTO_EV_LLM_REQUEST: {
		const struct proto_llm_request *q = &ev->body.request;

		row->u.request = (struct drain_request){
			.provider = q->provider,
			.model = q->model,
			.role = q->role,
			.max_tokens = q->max_tokens,
			.try_number = q->try_number,
		};
		break;
	}
	}
}
