//! Base data at the door (一标多实): standard addresses and the people and enterprises
//! attached to them. This module starts with the identifiers inspectors type in, checked the
//! way the national standards define them, and the masks personal data is shown with.

mod ids;
mod record;

pub use crate::privacy::{mask_id, mask_name, mask_phone, sees_personal_data};
pub use ids::{CreditCode, IdError, ResidentId};
pub use record::{
    Address, AddressChange, AddressDetails, AddressRecord, BaseError, Enterprise, EnterpriseKind,
    EnterprisePatch, EnterpriseState, House, HousePatch, HouseUse, Person, PersonPatch,
    PersonState, Residency, Tenure, Unapplied, address_doc_id, fold_address, may_edit_base,
    yyyymmdd,
};
