//! Native IdP sync drivers (filled by the driver work).
