// The embedded catalogue backend: one SQLite file in WAL mode.
// Schema and migrations: docs/catalogue.md.
#pragma once

#include <memory>
#include <string>

#include "doppel/catalogue.h"

namespace doppel {

Result<std::unique_ptr<Catalogue>> OpenSqliteCatalogue(const std::string& path,
                                                       const CatalogueOptions& options);

}  // namespace doppel
