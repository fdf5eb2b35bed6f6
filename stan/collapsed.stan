// Hierarchical linear regression with the slopes b AND the common coefficients beta = (a, mu_b)
// integrated out exactly: NUTS sees only (sigma_b, eps), through sigma_b_u and eps_u (their
// unconstrained values, scaled by a least-squares offset/multiplier). a, mu_b and then b are
// drawn exactly in generated quantities. Same data as marginal.stan plus the scaling; the
// formulas are in collapsed_functions.stan (DESIGN.md, "Collapsed").
// collapsed_fused.stan is this program with the density's value and gradient in C++.
functions {
#include priors_functions.stan
#include collapsed_scale_functions.stan
#include collapsed_functions.stan
}
#include collapsed_program.stan
