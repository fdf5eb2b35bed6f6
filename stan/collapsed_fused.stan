// collapsed.stan with its likelihood (value and gradient) and the conditional of beta from
// hierlin_fused.hpp (CmdStan user header, stanc --allow-undefined): same data, parameters,
// outputs and density.
functions {
#include priors_functions.stan
#include collapsed_scale_functions.stan
#include fused_functions.stan
}
#include collapsed_program.stan
