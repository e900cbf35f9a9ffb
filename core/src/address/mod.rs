//! Base data at the door (一标多实): standard addresses and the people and enterprises
//! attached to them. This module starts with the identifiers inspectors type in, checked the
//! way the national standards define them, and the masks personal data is shown with.

mod ids;
mod record;

pub use ids::{CreditCode, IdError, ResidentId, mask_name, mask_phone};
pub use record::{
    Address, AddressChange, AddressDetails, AddressRecord, BaseError, Enterprise, EnterpriseKind,
    EnterprisePatch, EnterpriseState, House, HousePatch, HouseUse, Person, PersonPatch,
    PersonState, Residency, Tenure, Unapplied, address_doc_id, fold_address, mask_id,
    may_edit_base, sees_personal_data, yyyymmdd,
};
