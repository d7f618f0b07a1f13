/* The command table: every autopack-ctl command, in --help order. */
#include "ctl/cmd.h"
#include "common/util.h"

const struct cmd_entry *const cmd_table[] = {
	&cmd_db_init_entry,
	&cmd_db_check_entry,
	&cmd_db_migrate_entry,
	&cmd_db_reidentify_entry,
	&cmd_db_adopt_entry,
	&cmd_seed_telemetry_run_entry,
	&cmd_run_import_entry,
	&cmd_session_list_entry,
	&cmd_session_show_entry,
	&cmd_status_entry,
	&cmd_workers_entry,
	&cmd_pause_entry,
	&cmd_resume_entry,
	&cmd_scale_entry,
	&cmd_stop_entry,
	&cmd_metrics_entry,
	&cmd_failed_entry,
	&cmd_retry_entry,
	&cmd_cancel_entry,
	&cmd_watch_entry,
	&cmd_telemetry_report_entry,
	&cmd_telemetry_import_entry,
	&cmd_telemetry_export_entry,
	&cmd_calibrate_entry,
	&cmd_completion_entry,
};
const size_t cmd_table_size = ARRAY_SIZE(cmd_table);
