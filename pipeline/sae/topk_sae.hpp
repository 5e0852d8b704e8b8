// The first, TopK-only name of the SAE interface; everything now lives in sae.hpp.
#pragma once
#include "pipeline/sae/sae.hpp"
