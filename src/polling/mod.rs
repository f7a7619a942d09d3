//! Polling: the running configuration and its tasks ([`running`], rebuilt by [`reload`]), one
//! poller per account ([`poller`]) calling its endpoints on their own schedules ([`schedule`]) and
//! backing off after failures ([`backoff`]).

pub(crate) mod backoff;
pub mod poller;
pub mod reload;
pub mod running;
pub mod schedule;
