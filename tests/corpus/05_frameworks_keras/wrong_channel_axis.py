# expect: test_axis = wrong channel axis
# @edit layer
# old: 'axis = self.axis % len(input_shape)'
# new: 'axis = len(input_shape) - 1  # channels last, always'
