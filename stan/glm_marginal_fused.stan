// glm_marginal.stan with its likelihood (value and gradient) from hierlin_fused.hpp (CmdStan user
// header, stanc --allow-undefined): vectorised for one or two group terms, group by group otherwise;
// same data, parameters, outputs and density.
functions {
#include glm_functions.stan
#include glm_fused_functions.stan
}
#include glm_marginal_program.stan
