//! The integration tests, as one binary (one link of the AWS SDK instead of one per file). Each
//! module is one area; `support` is the harness: the emulator-backed stack and the in-memory one.

mod support;

mod bad_input;
mod chaos;
mod confirmation_page;
mod contract;
mod contract_fuzz;
mod data_sources;
mod deadlines;
mod emulator_dynamo;
mod emulator_faults;
mod emulator_iam;
mod emulator_meter;
mod emulator_s3;
mod emulator_waits;
mod erasure_replay;
mod export_page_browser;
mod export_parts;
mod exports;
mod function_roles;
mod gateway;
mod heavy_user;
mod journey;
mod local_stack;
mod mail_events;
mod outside_sources;
mod privacy_center;
mod privacy_center_browser;
mod privacy_center_journey;
mod privacy_of_logs;
mod pump;
mod records;
mod rights;
mod source_callback;
mod source_webhook_contract;
mod staff_api;
mod staff_command_line;
mod staff_entered_requests;
mod staff_sources;
mod status_page;
mod store_contract;
mod stream_dispatch;
mod template_rules;
