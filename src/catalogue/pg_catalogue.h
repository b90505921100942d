// The shared catalogue backend: a PostgreSQL database reached with libpq.
// Schema and migrations: docs/catalogue.md ("PostgreSQL").
#pragma once

#include <memory>
#include <string>

#include "doppel/catalogue.h"

namespace doppel {

// `uri` is a libpq connection URI (postgresql://user@host:port/dbname?...).
Result<std::unique_ptr<Catalogue>> OpenPgCatalogue(const std::string& uri,
                                                   const CatalogueOptions& options);

// The URI with any password replaced by "***", for messages.
std::string RedactPgUri(const std::string& uri);

}  // namespace doppel
