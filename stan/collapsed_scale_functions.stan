  // u -> scale parameter: scale * inv_logit(u) for a uniform(0, scale) prior (Stan's
  // <lower=0, upper=scale>), exp(u) for a half-normal one (<lower=0>); and the log Jacobian.
  real scale_from_u(real u, int family, real scale) {
    return family == 1 ? scale * inv_logit(u) : exp(u);
  }
  real scale_u_log_jacobian(real u, int family, real scale) {
    return family == 1 ? log(scale) + log_inv_logit(u) + log1m_inv_logit(u) : u;
  }
