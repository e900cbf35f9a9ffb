//! The district's standard checklists (version 1 of each): households, the four kinds of
//! enterprise (经营/管理/服务/工业), and the fire-safety and group-rental special patrols.

use super::{HazardRule, Item, ItemKind, Subject, Template, Trigger};
use crate::case::{Category, Priority};

fn yes_no(id: &str, text: &str, hazard_when: Option<(bool, Category, Priority, &str)>) -> Item {
    Item {
        id: id.into(),
        text: text.into(),
        kind: ItemKind::YesNo,
        required: true,
        hazard: hazard_when.map(|(when, category, priority, title)| HazardRule {
            when: Trigger::Answer(when),
            category,
            priority,
            title: title.into(),
        }),
    }
}

fn number(
    id: &str,
    text: &str,
    max: f64,
    unit: &str,
    above: Option<(f64, Category, &str)>,
) -> Item {
    Item {
        id: id.into(),
        text: text.into(),
        kind: ItemKind::Number {
            min: 0.0,
            max,
            unit: unit.into(),
        },
        required: true,
        hazard: above.map(|(limit, category, title)| HazardRule {
            when: Trigger::Above(limit),
            category,
            priority: Priority::Normal,
            title: title.into(),
        }),
    }
}

fn photo(id: &str, text: &str) -> Item {
    Item {
        id: id.into(),
        text: text.into(),
        kind: ItemKind::Photo,
        required: false,
        hazard: None,
    }
}

fn notes() -> Item {
    Item {
        id: "notes".into(),
        text: "其他情况 / other observations".into(),
        kind: ItemKind::Text,
        required: false,
        hazard: None,
    }
}

fn template(id: &str, subject: Subject, title: &str, items: Vec<Item>) -> Template {
    Template {
        id: id.into(),
        version: 1,
        subject,
        title: title.into(),
        items,
    }
}

/// Every standard template, version 1.
pub fn standard_templates() -> Vec<Template> {
    use Category::*;
    let fire_common = || {
        vec![
            yes_no(
                "exits_clear",
                "安全出口、疏散通道是否畅通",
                Some((
                    false,
                    FireHazard,
                    Priority::Urgent,
                    "安全出口或疏散通道堵塞",
                )),
            ),
            yes_no(
                "extinguishers_ok",
                "灭火器是否配备且在有效期内",
                Some((false, FireHazard, Priority::Normal, "灭火器缺失或过期")),
            ),
            yes_no(
                "ebike_indoor",
                "是否有电动车在室内或楼道充电",
                Some((true, FireHazard, Priority::Urgent, "电动车室内或楼道充电")),
            ),
            yes_no(
                "flying_wires",
                "是否存在私拉乱接电线",
                Some((true, FireHazard, Priority::Normal, "私拉乱接电线")),
            ),
        ]
    };
    let enterprise = |id: &str, subject, title: &str, extra: Vec<Item>| {
        let mut items = vec![
            yes_no(
                "licence_shown",
                "营业执照是否公示且与经营相符",
                Some((false, Other, Priority::Low, "证照不符或未公示")),
            ),
            yes_no(
                "responsibility_signed",
                "是否签订安全生产与消防责任书",
                None,
            ),
        ];
        items.extend(fire_common());
        items.extend(extra);
        items.push(photo("site_photo", "现场照片"));
        items.push(notes());
        template(id, subject, title, items)
    };
    vec![
        template(
            "household",
            Subject::Household,
            "住户走访",
            vec![
                yes_no("residents_match", "实际居住人员与登记是否一致", None),
                number(
                    "residents",
                    "实际居住人数",
                    50.0,
                    "人",
                    Some((10.0, GroupRental, "疑似群租")),
                ),
                yes_no(
                    "ebike_indoor",
                    "是否有电动车在室内或楼道充电",
                    Some((true, FireHazard, Priority::Urgent, "电动车室内或楼道充电")),
                ),
                yes_no(
                    "dispute",
                    "是否有邻里或家庭矛盾需要调解",
                    Some((true, Dispute, Priority::Normal, "矛盾纠纷待调解")),
                ),
                yes_no("needs_care", "是否有需要关爱的孤寡、残疾或困难人员", None),
                notes(),
            ],
        ),
        enterprise(
            "enterprise-business",
            Subject::BusinessEnterprise,
            "经营类企业巡查",
            vec![yes_no(
                "food_licence",
                "涉及餐饮的是否持有食品经营许可",
                Some((false, EnterpriseSafety, Priority::Normal, "无食品经营许可")),
            )],
        ),
        enterprise(
            "enterprise-management",
            Subject::ManagementEnterprise,
            "管理类企业巡查",
            vec![yes_no(
                "storage_safe",
                "仓储物品堆放是否规范、无危化品混放",
                Some((false, EnterpriseSafety, Priority::Normal, "仓储堆放不规范")),
            )],
        ),
        enterprise(
            "enterprise-service",
            Subject::ServiceEnterprise,
            "服务类企业巡查",
            vec![yes_no(
                "crowd_plan",
                "人员密集场所是否有疏散预案",
                Some((false, FireHazard, Priority::Normal, "无疏散预案")),
            )],
        ),
        enterprise(
            "enterprise-industrial",
            Subject::IndustrialEnterprise,
            "工业类企业巡查",
            vec![
                yes_no(
                    "hazmat_ok",
                    "危险化学品是否按规定存储、台账齐全",
                    Some((
                        false,
                        EnterpriseSafety,
                        Priority::Urgent,
                        "危化品存储不规范",
                    )),
                ),
                yes_no(
                    "discharge",
                    "是否有异常排放（废水、废气、异味）",
                    Some((true, Environment, Priority::Urgent, "疑似异常排放")),
                ),
            ],
        ),
        template(
            "fire-safety",
            Subject::FireSafety,
            "消防安全专项检查",
            {
                let mut items = fire_common();
                items.push(photo("site_photo", "现场照片"));
                items.push(notes());
                items
            },
        ),
        template(
            "group-rental",
            Subject::GroupRental,
            "群租房专项检查",
            vec![
                number(
                    "rooms",
                    "分隔房间数",
                    100.0,
                    "间",
                    Some((6.0, GroupRental, "违规分隔群租")),
                ),
                number(
                    "residents",
                    "实际居住人数",
                    200.0,
                    "人",
                    Some((10.0, GroupRental, "疑似群租")),
                ),
                yes_no(
                    "kitchen_sleeping",
                    "是否有厨房、卫生间住人",
                    Some((true, GroupRental, Priority::Urgent, "厨卫住人")),
                ),
                yes_no(
                    "ebike_indoor",
                    "是否有电动车在室内或楼道充电",
                    Some((true, FireHazard, Priority::Urgent, "电动车室内或楼道充电")),
                ),
                photo("site_photo", "现场照片"),
                notes(),
            ],
        ),
    ]
}
