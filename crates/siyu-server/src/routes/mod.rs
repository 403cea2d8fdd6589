//! The route modules: each declares its routes with `route!` and handles
//! them; [`all`] is the one table the router, the authorization layer
//! (`auth::enforce`) and `/openapi.json` are built from. Route modules take
//! their plumbing from `crate::request` and never from each other.

use crate::request::Route;

pub mod ai;
pub mod analytics;
pub mod automation;
pub mod callbacks;
pub mod channels;
pub mod communities;
pub mod content;
pub mod conversations;
pub mod customers;
pub mod events;
pub mod fission;
pub mod intents;
pub mod keys;
pub mod live;
pub mod moments;
pub mod ops;
pub mod orders;
pub mod partners;
pub mod persons;
pub mod quick_replies;
pub mod segments;
pub mod sensitive;
pub mod wecom_sync;

/// Every route of the API, in the order `/openapi.json` lists them.
pub fn all() -> Vec<Route> {
    let mut routes = ops::routes();
    routes.extend(events::routes());
    routes.extend(persons::routes());
    routes.extend(customers::routes());
    routes.extend(segments::routes());
    routes.extend(analytics::routes());
    routes.extend(keys::routes());
    routes.extend(automation::routes());
    routes.extend(fission::routes());
    routes.extend(content::routes());
    routes.extend(moments::routes());
    routes.extend(communities::routes());
    routes.extend(orders::routes());
    routes.extend(callbacks::routes());
    routes.extend(wecom_sync::routes());
    routes.extend(channels::routes());
    routes.extend(quick_replies::routes());
    routes.extend(sensitive::routes());
    routes.extend(conversations::routes());
    routes.extend(live::routes());
    routes.extend(ai::routes());
    routes.extend(intents::routes());
    routes.extend(partners::routes());
    routes
}
