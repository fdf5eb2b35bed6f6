  // Log density of a scale prior, fully normalised.
  // family 1: uniform(0, scale); family 2: half-normal(0, scale).
  real scale_prior_lpdf(real s, int family, real scale) {
    if (family == 1) {
      return uniform_lpdf(s | 0, scale);
    }
    return normal_lpdf(s | 0, scale) + log2();
  }
  // Upper bound of a scale parameter: the uniform's upper end, else none.
  real scale_upper(int family, real scale) {
    return family == 1 ? scale : positive_infinity();
  }
