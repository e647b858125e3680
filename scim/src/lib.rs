//! The SCIM 2.0 service provider (filled by the SCIM work).
