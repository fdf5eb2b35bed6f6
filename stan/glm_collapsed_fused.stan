// glm_collapsed.stan with its likelihood for one or two group terms (value and gradient) from
// hierlin_fused.hpp (CmdStan user header, stanc --allow-undefined): same data, parameters, outputs
// and density. Three or more group terms run the same Stan loop as the pure program.
functions {
#include glm_functions.stan
#include glm_fused_functions.stan
}
#include glm_collapsed_program.stan
