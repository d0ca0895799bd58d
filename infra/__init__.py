"""The CDK app: the central stack in the security account, and the member StackSets."""
