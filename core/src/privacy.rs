//! Personal data shown to people: who sees residents', parties' and citizens' names, ID
//! numbers and phone numbers whole, and the masks everyone else sees them through. Phones,
//! pages, exports and Open311 all mask with these functions.

use crate::case::Role;

/// Whether `role` sees full names, ID numbers and phones of residents and of the parties to
/// a mediation. Everyone else sees them masked: `张**`, `320509********5838`, `138****1234`.
pub fn sees_personal_data(role: Role) -> bool {
    matches!(role, Role::GridChief | Role::Mediator)
}

/// Whether `role` sees who a citizen who reported a case is (their account, full name and
/// phone): the command centre, which calls them back. Handlers see the masked contact.
pub fn sees_citizen_contact(role: Role) -> bool {
    role == Role::Operator
}

/// `张三` → `张**`: the family name and a fixed mask (the length is not revealed).
pub fn mask_name(name: &str) -> String {
    match name.trim().chars().next() {
        Some(first) => format!("{first}**"),
        None => String::new(),
    }
}

/// `13812341234` → `138****1234`; anything shorter than 8 characters is fully masked.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.trim().chars().collect();
    if chars.len() < 8 {
        return "****".into();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// An ID number masked the way [`ResidentId::masked`](crate::address::ResidentId::masked)
/// does, for any text (stored numbers were checked when entered, but masking must never fail
/// or leak).
pub fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_hide_all_but_the_family_name_and_the_ends_of_the_number() {
        assert_eq!(mask_name("张三"), "张**");
        assert_eq!(mask_name("欧阳明月"), "欧**");
        assert_eq!(mask_name(" "), "");
        assert_eq!(mask_phone("13812341234"), "138****1234");
        assert_eq!(mask_phone("110"), "****");
        assert_eq!(mask_id("320509199001015838"), "320509********5838");
        assert_eq!(mask_id("1234567890"), "**********");
        assert_eq!(mask_id(""), "");
    }

    #[test]
    fn only_chiefs_and_mediators_see_residents_and_only_the_centre_sees_citizens() {
        let whole: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| sees_personal_data(*r))
            .collect();
        assert_eq!(whole, [Role::GridChief, Role::Mediator]);
        let contact: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| sees_citizen_contact(*r))
            .collect();
        assert_eq!(contact, [Role::Operator]);
    }
}
