//! sea-orm entities of Amtsplatz. Data only: behaviour lives in the server's domain modules.
//!
//! Every tenant-owned table carries `tenant_id`; unique keys on tenant data include it.

pub mod application_events;
pub mod application_tasks;
pub mod applications;
pub mod appointment_offers;
pub mod attachments;
pub mod audit_log;
pub mod booking_resources;
pub mod bookings;
pub mod break_glass_grants;
pub mod departments;
pub mod drafts;
pub mod fit_connect_handovers;
pub mod fit_connect_submissions;
pub mod locations;
pub mod messages;
pub mod outbox;
pub mod payment_accounts;
pub mod payment_refunds;
pub mod payments;
pub mod platform_admins;
pub mod provider_events;
pub mod refresh_tokens;
pub mod service_revisions;
pub mod spent_challenges;
pub mod staff_memberships;
pub mod staff_roles;
pub mod staff_users;
pub mod states;
pub mod template_adoptions;
pub mod template_proposals;
pub mod template_versions;
pub mod templates;
pub mod tenant_services;
pub mod tenants;
