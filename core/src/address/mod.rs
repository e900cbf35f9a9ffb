//! Base data at the door (一标多实): standard addresses and the people and enterprises
//! attached to them. This module starts with the identifiers inspectors type in, checked the
//! way the national standards define them, and the masks personal data is shown with.

mod ids;

pub use ids::{CreditCode, IdError, ResidentId, mask_name, mask_phone};
