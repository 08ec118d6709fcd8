//! `GET /v2/`: the API version check.

use worker::{Response, ResponseBody};

use super::reply;
use crate::oci::error::Result;

pub fn get() -> Result<Response> {
    reply(200, &[("Content-Type", "application/json".into())], ResponseBody::Body(b"{}".to_vec()))
}
