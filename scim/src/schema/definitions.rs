//! The attribute definitions, after RFC 7643 §4.1, §4.2, §4.3 and §8.7, limited to what the
//! engine stores. `password` is absent on purpose: a VPN directory never keeps passwords, and
//! a schema that listed it would promise what the server does not do.

use super::attribute::{AttrType, Attribute, Mutability, Returned, Schema};

/// The core User schema's URN.
pub(crate) const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension's URN.
pub(crate) const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The core Group schema's URN.
pub(crate) const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

const fn attribute(name: &'static str, kind: AttrType, description: &'static str) -> Attribute {
    Attribute {
        name,
        kind,
        multi_valued: false,
        description,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        unique: false,
        canonical_values: &[],
        reference_types: &[],
        sub_attributes: &[],
    }
}

const fn string(name: &'static str, description: &'static str) -> Attribute {
    attribute(name, AttrType::String, description)
}

const fn complex(name: &'static str, description: &'static str, subs: &'static [Attribute]) -> Attribute {
    Attribute {
        sub_attributes: subs,
        ..attribute(name, AttrType::Complex, description)
    }
}

const fn multi(attribute: Attribute) -> Attribute {
    Attribute {
        multi_valued: true,
        ..attribute
    }
}

const fn read_only(attribute: Attribute) -> Attribute {
    Attribute {
        mutability: Mutability::ReadOnly,
        ..attribute
    }
}

const fn immutable(attribute: Attribute) -> Attribute {
    Attribute {
        mutability: Mutability::Immutable,
        ..attribute
    }
}

const fn case_exact(attribute: Attribute) -> Attribute {
    Attribute {
        case_exact: true,
        ..attribute
    }
}

const fn reference(name: &'static str, description: &'static str, types: &'static [&'static str]) -> Attribute {
    Attribute {
        reference_types: types,
        case_exact: true,
        ..attribute(name, AttrType::Reference, description)
    }
}

const fn canonical(attribute: Attribute, values: &'static [&'static str]) -> Attribute {
    Attribute {
        canonical_values: values,
        ..attribute
    }
}

const PRIMARY: Attribute = attribute(
    "primary",
    AttrType::Boolean,
    "Whether this is the preferred value; at most one value is primary.",
);
const DISPLAY: Attribute = string("display", "A human-readable name, primarily used for display purposes.");

/// The sub-attributes of `emails`, `phoneNumbers`, `ims`, `photos`, `entitlements`, `roles`
/// and `x509Certificates`: all but `value` are the same.
macro_rules! multi_value {
    ($name:literal, $description:literal, $value:expr, $types:expr) => {
        multi(complex(
            $name,
            $description,
            &[
                $value,
                DISPLAY,
                canonical(string("type", "A label indicating the attribute's function."), $types),
                PRIMARY,
            ],
        ))
    };
}

const NAME: Attribute = complex(
    "name",
    "The components of the user's real name.",
    &[
        string("formatted", "The full name, formatted for display."),
        string("familyName", "The family name, or last name."),
        string("givenName", "The given name, or first name."),
        string("middleName", "The middle name(s)."),
        string("honorificPrefix", "The honorific prefix(es), or title."),
        string("honorificSuffix", "The honorific suffix(es)."),
    ],
);

const ADDRESSES: Attribute = multi(complex(
    "addresses",
    "A physical mailing address for this user.",
    &[
        string("formatted", "The full mailing address, formatted for display."),
        string("streetAddress", "The full street address component."),
        string("locality", "The city or locality component."),
        string("region", "The state or region component."),
        string("postalCode", "The zip code or postal code component."),
        string("country", "The country name component (ISO 3166-1 alpha-2)."),
        canonical(
            string("type", "A label indicating the attribute's function."),
            &["work", "home", "other"],
        ),
        PRIMARY,
    ],
));

const GROUPS: Attribute = read_only(multi(complex(
    "groups",
    "The groups the user is directly a member of; change them through the Group resource.",
    &[
        read_only(string("value", "The id of the group.")),
        read_only(reference("$ref", "The URI of the group.", &["Group"])),
        read_only(string("display", "The group's displayName.")),
        read_only(canonical(
            string("type", "How the user is a member: always `direct`."),
            &["direct"],
        )),
    ],
)));

/// The core User schema (RFC 7643 §4.1) as stored.
pub(crate) static USER: Schema = Schema {
    id: USER_URN,
    name: "User",
    description: "User Account",
    attributes: &[
        Attribute {
            required: true,
            unique: true,
            ..string(
                "userName",
                "Unique identifier for the user, compared case-insensitively.",
            )
        },
        NAME,
        string("displayName", "The name of the user, suitable for display."),
        string("nickName", "The casual way to address the user."),
        reference("profileUrl", "A URI of the user's online profile.", &["external"]),
        string("title", "The user's title, such as \"Vice President\"."),
        string("userType", "The relationship between the organization and the user."),
        string("preferredLanguage", "The user's preferred written or spoken language."),
        string("locale", "The user's default location, for localizing items."),
        string("timezone", "The user's time zone, in IANA format."),
        // Every user has a status, so `active` is always present; a client that omits it on
        // creation gets an active user, and one that omits it on PUT keeps the status as is.
        Attribute {
            required: true,
            ..attribute("active", AttrType::Boolean, "The user's administrative status.")
        },
        multi_value!(
            "emails",
            "Email addresses for the user.",
            string("value", "The email address."),
            &["work", "home", "other"]
        ),
        multi_value!(
            "phoneNumbers",
            "Phone numbers for the user.",
            string("value", "The phone number."),
            &["work", "home", "mobile", "fax", "pager", "other"]
        ),
        multi_value!(
            "ims",
            "Instant messaging addresses for the user.",
            string("value", "The instant messaging address."),
            &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]
        ),
        multi_value!(
            "photos",
            "URLs of photos of the user.",
            reference("value", "The URL of a photo of the user.", &["external"]),
            &["photo", "thumbnail"]
        ),
        ADDRESSES,
        GROUPS,
        multi_value!(
            "entitlements",
            "The entitlements of the user.",
            string("value", "The value of an entitlement."),
            &[]
        ),
        multi_value!(
            "roles",
            "The roles of the user.",
            string("value", "The value of a role."),
            &[]
        ),
        multi_value!(
            "x509Certificates",
            "The X.509 certificates of the user.",
            attribute("value", AttrType::Binary, "The DER-encoded certificate, in base64."),
            &[]
        ),
    ],
};

/// The enterprise User extension (RFC 7643 §4.3).
pub(crate) static ENTERPRISE_USER: Schema = Schema {
    id: ENTERPRISE_USER_URN,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        string(
            "employeeNumber",
            "A string identifier, typically numeric or alphanumeric.",
        ),
        string("costCenter", "The name of a cost center."),
        string("organization", "The name of an organization."),
        string("division", "The name of a division."),
        string("department", "The name of a department."),
        complex(
            "manager",
            "The user's manager.",
            &[
                string("value", "The id of the manager."),
                read_only(reference("$ref", "The URI of the manager.", &["User"])),
                read_only(string("displayName", "The displayName of the manager.")),
            ],
        ),
    ],
};

/// The core Group schema (RFC 7643 §4.2).
pub(crate) static GROUP: Schema = Schema {
    id: GROUP_URN,
    name: "Group",
    description: "Group",
    attributes: &[
        Attribute {
            required: true,
            ..string("displayName", "A human-readable name for the group.")
        },
        multi(complex(
            "members",
            "The direct members of the group: users and groups.",
            &[
                immutable(string("value", "The id of the member.")),
                immutable(reference("$ref", "The URI of the member.", &["User", "Group"])),
                Attribute {
                    returned: Returned::Request,
                    ..read_only(string(
                        "display",
                        "The member's displayName (or userName); returned when asked for.",
                    ))
                },
                immutable(canonical(string("type", "The type of the member."), &["User", "Group"])),
            ],
        )),
    ],
};

/// The attributes of every resource (RFC 7643 §3.1), which no schema document lists.
pub(crate) static COMMON_ATTRIBUTES: [Attribute; 3] = [
    Attribute {
        returned: Returned::Always,
        unique: true,
        ..read_only(case_exact(string("id", "The server's identifier of the resource.")))
    },
    case_exact(string(
        "externalId",
        "The provisioning client's identifier of the resource.",
    )),
    read_only(complex(
        "meta",
        "Resource metadata.",
        &[
            read_only(case_exact(string("resourceType", "The resource type."))),
            read_only(attribute(
                "created",
                AttrType::DateTime,
                "When the resource was created.",
            )),
            read_only(attribute(
                "lastModified",
                AttrType::DateTime,
                "When the resource last changed.",
            )),
            read_only(reference("location", "The URI of the resource.", &["uri"])),
            read_only(case_exact(string("version", "The resource's version (its weak ETag)."))),
        ],
    )),
];
