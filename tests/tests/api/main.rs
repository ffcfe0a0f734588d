//! Black-box tests: each test spawns the real server on 127.0.0.1:0 with a fresh database
//! (SQLite file, or a fresh PostgreSQL database when `AMTSPLATZ_TEST_DATABASE_URL` is set),
//! the demo tenants from `tenants/`, and talks to it over HTTP/GraphQL like a client.

mod fake_fitconnect;
mod fake_stripe;
mod helpers;

mod applications;
mod appointments;
mod assurance;
mod attachments;
mod auth;
mod backup;
mod bookings;
mod fim;
mod fitconnect;
mod fitconnect_sender;
mod fuzz;
mod guard;
mod isolation;
mod limits;
mod marketplace;
mod ops;
mod payments;
mod portal;
mod portal_signin;
mod process;
mod races;
mod replicas;
mod rls;
mod services_search;
mod tenancy;
